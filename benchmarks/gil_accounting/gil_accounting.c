/* Counts, per thread, how often code in shared libraries (torch, torchvision, numpy, the
   CUDA bindings) lets go of the GIL and takes it back, and how long taking it back took.
   Read it with ../gil_accounting.py, which also installs the counters.

   Build: gcc -O2 -shared -fPIC -o libgil_accounting.so gil_accounting.c -ldl
   Use:   LD_PRELOAD=$PWD/libgil_accounting.so python3 ...

   The counters are installed by rewriting the loaded libraries' GOT entries for
   PyEval_SaveThread, PyEval_RestoreThread, PyEval_AcquireThread and PyGILState_Ensure
   (gil_accounting_install), not by exporting those names: an interpreter linked
   statically, as the GPU machine's python3 is, resolves its own symbols ahead of any
   preloaded library, so interposing by name would see nothing there. Libraries loaded
   later are covered by installing again. The interpreter and libpython are left alone:
   CPython's own releases (time.sleep, socket and queue waits) are not counted.
   x86-64 only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024

struct gil_slot {
    long tid;       /* the kernel's thread id (threading.get_native_id()) */
    long releases;  /* PyEval_SaveThread */
    long acquires;  /* PyEval_RestoreThread, PyEval_AcquireThread and PyGILState_Ensure */
    double wait_s;  /* seconds spent in those three */
};

static struct gil_slot slots[MAX_THREADS];
static int used;
static __thread struct gil_slot *mine;

static void *(*real_save)(void);
static void (*real_restore)(void *);
static void (*real_acquire)(void *);
static int (*real_ensure)(void);

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

static void *counted_save(void) {
    slot()->releases++;
    return real_save();
}

/* Take the GIL back through ``take``, counting the wait. */
static void timed(void (*take)(void *), void *state) {
    struct gil_slot *s = slot();
    double began = now();
    take(state);
    s->wait_s += now() - began;
    s->acquires++;
}

static void counted_restore(void *state) { timed(real_restore, state); }

static void counted_acquire(void *state) { timed(real_acquire, state); }

static int counted_ensure(void) {
    struct gil_slot *s = slot();
    double began = now();
    int held = real_ensure();
    s->wait_s += now() - began;
    s->acquires++;
    return held;
}

static const struct {
    const char *name;
    void *counted;
} hooks[] = {
    {"PyEval_SaveThread", (void *)counted_save},
    {"PyEval_RestoreThread", (void *)counted_restore},
    {"PyEval_AcquireThread", (void *)counted_acquire},
    {"PyGILState_Ensure", (void *)counted_ensure},
};
#define HOOKS (sizeof hooks / sizeof hooks[0])

static void *counted_for(const char *name) {
    for (size_t i = 0; i < HOOKS; i++)
        if (strcmp(name, hooks[i].name) == 0) return hooks[i].counted;
    return NULL;
}

/* A pointer from the dynamic section: glibc makes most of them absolute when it loads an
   object, but not every object's (the vDSO's stay relative). */
static ElfW(Addr) absolute(ElfW(Addr) value, ElfW(Addr) base) {
    return value < base ? value + base : value;
}

static int rewrite(ElfW(Addr) base, const ElfW(Rela) *rela, size_t size, const ElfW(Sym) *symtab,
                   const char *strtab) {
    int patched = 0;
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < size / sizeof *rela; i++) {
        unsigned long type = ELF64_R_TYPE(rela[i].r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
        void *counted = counted_for(strtab + symtab[ELF64_R_SYM(rela[i].r_info)].st_name);
        void **entry = (void **)(base + rela[i].r_offset);
        if (!counted || *entry == counted) continue;
        void *start = (void *)((ElfW(Addr))entry & ~(ElfW(Addr))(page - 1));
        if (mprotect(start, page, PROT_READ | PROT_WRITE) != 0) continue;
        *entry = counted; /* one aligned store: threads calling through it see old or new */
        patched++;
    }
    return patched;
}

static int visit(struct dl_phdr_info *info, size_t size, void *total) {
    (void)size;
    const char *name = info->dlpi_name;
    if (!name || !*name || strstr(name, "libpython") || strstr(name, "libgil_accounting"))
        return 0; /* the interpreter itself, or this library */
    for (int p = 0; p < info->dlpi_phnum; p++) {
        if (info->dlpi_phdr[p].p_type != PT_DYNAMIC) continue;
        const ElfW(Dyn) *dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[p].p_vaddr);
        ElfW(Addr) symtab = 0, strtab = 0, jmprel = 0, rela = 0;
        size_t jmprel_size = 0, rela_size = 0;
        for (; dyn->d_tag != DT_NULL; dyn++) {
            switch (dyn->d_tag) {
                case DT_SYMTAB: symtab = absolute(dyn->d_un.d_ptr, info->dlpi_addr); break;
                case DT_STRTAB: strtab = absolute(dyn->d_un.d_ptr, info->dlpi_addr); break;
                case DT_JMPREL: jmprel = absolute(dyn->d_un.d_ptr, info->dlpi_addr); break;
                case DT_PLTRELSZ: jmprel_size = dyn->d_un.d_val; break;
                case DT_RELA: rela = absolute(dyn->d_un.d_ptr, info->dlpi_addr); break;
                case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
            }
        }
        if (!symtab || !strtab) continue;
        const ElfW(Sym) *syms = (const ElfW(Sym) *)symtab;
        const char *strs = (const char *)strtab;
        if (jmprel)
            *(int *)total +=
                rewrite(info->dlpi_addr, (const ElfW(Rela) *)jmprel, jmprel_size, syms, strs);
        if (rela)
            *(int *)total += rewrite(info->dlpi_addr, (const ElfW(Rela) *)rela, rela_size, syms, strs);
    }
    return 0;
}

/* Route the loaded libraries' GIL calls through the counters; the number of entries
   rewritten now (0 once every library is done), or -1 where this cannot work. */
int gil_accounting_install(void) {
#if defined(__x86_64__)
    if (!real_save) {
        real_save = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyEval_SaveThread");
        real_restore = (void (*)(void *))dlsym(RTLD_DEFAULT, "PyEval_RestoreThread");
        real_acquire = (void (*)(void *))dlsym(RTLD_DEFAULT, "PyEval_AcquireThread");
        real_ensure = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
        if (!real_save || !real_restore || !real_acquire || !real_ensure) {
            real_save = NULL;
            return -1;
        }
    }
    int total = 0;
    dl_iterate_phdr(visit, &total);
    return total;
#else
    return -1;
#endif
}

struct gil_slot *gil_accounting_slots(void) { return slots; }
int gil_accounting_used(void) { return used < MAX_THREADS ? used : MAX_THREADS; }
