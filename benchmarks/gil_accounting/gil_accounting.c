/* An LD_PRELOAD shim that counts, per thread, how often code in shared libraries (torch,
   torchvision, ctypes, the CUDA bindings) lets go of the GIL and takes it back, and how
   long taking it back took. Read it with ../gil_accounting.py.

   Build: gcc -O2 -shared -fPIC -o libgil_accounting.so gil_accounting.c -ldl
   Use:   LD_PRELOAD=$PWD/libgil_accounting.so python3 ...

   CPython's own releases (time.sleep, socket and queue waits) happen inside the
   interpreter and are not seen: this counts what extension code does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024

struct gil_slot {
    long tid;       /* the kernel's thread id (threading.get_native_id()) */
    long releases;  /* PyEval_SaveThread */
    long acquires;  /* PyEval_RestoreThread and PyGILState_Ensure */
    double wait_s;  /* seconds spent in those two */
};

static struct gil_slot slots[MAX_THREADS];
static int used;
static __thread struct gil_slot *mine;

static struct gil_slot *slot(void) {
    if (!mine) {
        int i = __atomic_fetch_add(&used, 1, __ATOMIC_RELAXED);
        if (i >= MAX_THREADS) i = MAX_THREADS - 1; /* the last slot pools the overflow */
        mine = &slots[i];
        mine->tid = syscall(SYS_gettid);
    }
    return mine;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

void *PyEval_SaveThread(void) {
    static void *(*real)(void);
    if (!real) real = dlsym(RTLD_NEXT, "PyEval_SaveThread");
    slot()->releases++;
    return real();
}

void PyEval_RestoreThread(void *state) {
    static void (*real)(void *);
    if (!real) real = dlsym(RTLD_NEXT, "PyEval_RestoreThread");
    struct gil_slot *s = slot();
    double began = now();
    real(state);
    s->wait_s += now() - began;
    s->acquires++;
}

int PyGILState_Ensure(void) {
    static int (*real)(void);
    if (!real) real = dlsym(RTLD_NEXT, "PyGILState_Ensure");
    struct gil_slot *s = slot();
    double began = now();
    int held = real();
    s->wait_s += now() - began;
    s->acquires++;
    return held;
}

struct gil_slot *gil_accounting_slots(void) { return slots; }
int gil_accounting_used(void) { return used < MAX_THREADS ? used : MAX_THREADS; }
