"""Builds minisinga._core: one pybind11 extension from csrc/ (C++17, OpenMP, OpenBLAS from the
scipy-openblas32 wheel), plus the CUDA kernels when nvcc and cuBLAS are available.

Environment: MINISINGA_CUDA=1 forces the CUDA build, =0 disables it (default: on when nvcc
and cuBLAS headers are found), =emu builds the CUDA code for the CUDA emulator in
tests/cuda_emu (a test build: the CUDA tests run without a GPU, see tests/cuda_emu/run.sh);
MINISINGA_CUDA_ARCHS (default "80;90"); DEBUG=1 for -O0 -g; MINISINGA_SANITIZE=address builds
with AddressSanitizer (CPU or emulated CUDA; import with libasan in LD_PRELOAD);
MINISINGA_JOBS parallel compile jobs (default: number of CPUs); MINISINGA_MARCH the -march
value (default "native"; empty for a portable build); MINISINGA_LDFLAGS extra linker flags;
MSEMU_MEMTRACE=1 (with =emu) counts the kernels' memory accesses (tests/cuda_emu/mem_table.py).
"""

import glob
import os
import shutil
import sys
import sysconfig

# AddressSanitizer instruments host code only: a sanitized build is a CPU or emulated-CUDA one.
# Checked first, before the imports below (the same answer with or without nvcc or pybind11).
SANITIZE_REFUSAL = "MINISINGA_SANITIZE needs MINISINGA_CUDA=0 (CPU) or MINISINGA_CUDA=emu"
if os.environ.get("MINISINGA_SANITIZE") and os.environ.get("MINISINGA_CUDA") == "1":
    sys.exit(SANITIZE_REFUSAL)

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension  # noqa: E402
from setuptools import setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("DEBUG", "0") == "1"
# ThreadSanitizer's instrumentation without its runtime: tests/cuda_emu/memtrace.cc gets the
# calls (no function entry/exit hooks).
MEMTRACE = os.environ.get("MSEMU_MEMTRACE", "0") == "1"
MEMTRACE_FLAGS = ["-fsanitize=thread", "--param=tsan-instrument-func-entry-exit=0"]


def openblas():
    import scipy_openblas32 as ob

    return ob.get_include_dir(), ob.get_lib_dir(), ob.get_library()


def _cuda_home(nvcc):
    """The toolkit root: $CUDA_HOME / $CUDA_PATH, nvcc's ../.., else /usr/local/cuda (nvcc may
    be a wrapper script outside the toolkit, e.g. /usr/local/bin/nvcc)."""
    cands = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    if nvcc:
        cands.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    cands.append("/usr/local/cuda")
    for c in cands:
        if c and os.path.exists(os.path.join(c, "include", "cuda_runtime.h")):
            return c
    return None


def _lib_name(name, dirs):
    """The -l name for lib<name>: wheels ship only lib<name>.so.N, linked as ':lib<name>.so.N'."""
    if any(os.path.exists(os.path.join(d, f"lib{name}.so")) for d in dirs):
        return name
    for d in dirs:
        found = sorted(glob.glob(os.path.join(d, f"lib{name}.so.[0-9]*")), key=len)
        if found:
            return ":" + os.path.basename(found[0])
    return name


def find_cuda():
    """Returns (nvcc, include dirs, library dirs, libraries) or None when CUDA is off or
    unavailable."""
    flag = os.environ.get("MINISINGA_CUDA", "")
    if flag == "0":
        return None
    if flag == "emu":
        return "emu", [os.path.join(ROOT, "tests", "cuda_emu", "include")], [], []
    nvcc = shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None
    )
    home = _cuda_home(nvcc)  # also right when nvcc is a wrapper script, not a link
    incs, libs = [], []
    if home:
        incs.append(os.path.join(home, "include"))
        libs += [os.path.join(home, "lib64"), os.path.join(home, "lib")]
    # cuBLAS ships with the toolkit or in the nvidia-cublas wheel.
    for site in sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]:
        for sub in ("nvidia/cu13", "nvidia/cublas", "nvidia/cuda_runtime"):
            d = os.path.join(site, sub)
            if os.path.isdir(os.path.join(d, "include")):
                incs.append(os.path.join(d, "include"))
                libs.append(os.path.join(d, "lib"))
    incs, libs = list(dict.fromkeys(incs)), list(dict.fromkeys(libs))
    has_cublas = any(os.path.exists(os.path.join(i, "cublas_v2.h")) for i in incs)
    if nvcc and has_cublas:
        return nvcc, incs, libs, [_lib_name("cudart", libs), _lib_name("cublas", libs)]
    if flag == "1":
        sys.exit(
            "MINISINGA_CUDA=1 but "
            + ("nvcc was not found" if not nvcc else "cublas_v2.h was not found")
            + " (install the CUDA toolkit or `pip install nvidia-cublas`)"
        )
    return None


class BuildExt(build_ext):
    """Compiles .cu sources with nvcc; everything else goes through the C++ compiler."""

    def build_extensions(self):
        if shutil.which("ccache") and not os.environ.get("MINISINGA_NO_CCACHE"):
            for attr in ("compiler_so", "compiler_so_cxx", "compiler_cxx", "compiler"):
                cmd = getattr(self.compiler, attr, None)
                if cmd and cmd[0] != "ccache":
                    setattr(self.compiler, attr, ["ccache"] + list(cmd))
        cuda = find_cuda()
        orig = self.compiler._compile

        def compile_one(obj, src, ext, cc_args, extra_postargs, pp_opts):
            if src.endswith(".cu") and cuda[0] == "emu":  # host C++ with rewritten launches
                sys.path.insert(0, os.path.join(ROOT, "tests", "cuda_emu"))
                import launches

                rewritten = obj + ".emu.cc"
                launches.main([None, src, rewritten])
                if MEMTRACE:  # every load and store of the kernels calls memtrace.cc
                    extra_postargs = extra_postargs + MEMTRACE_FLAGS
                orig(obj, rewritten, ext, cc_args, extra_postargs, pp_opts)
            elif src.endswith(".cu"):
                nvcc = cuda[0]
                archs = os.environ.get("MINISINGA_CUDA_ARCHS", "80;90").split(";")
                gencode = []
                for a in archs:
                    gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
                gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
                cmd = (
                    # No --use_fast_math: it turns powf into __powf (NaN for a negative base)
                    # and expf/logf into approximations, breaking parity with the CPU kernels.
                    [nvcc, "-c", src, "-o", obj, "-std=c++17", "-O3",
                     "-Xcompiler", "-fPIC", "-Xcompiler", "-fopenmp", "--expt-relaxed-constexpr",
                     "-Werror", "all-warnings"]
                    + gencode
                    + pp_opts
                )
                if shutil.which("ccache") and not os.environ.get("MINISINGA_NO_CCACHE"):
                    cmd = ["ccache"] + cmd  # ccache >= 4 caches nvcc compiles too
                self.spawn(cmd)
            else:
                orig(obj, src, ext, cc_args, extra_postargs, pp_opts)

        self.compiler._compile = compile_one
        self.compiler.src_extensions.append(".cu")
        super().build_extensions()


def make_extension():
    inc, libdir, lib = openblas()
    sources = sorted(glob.glob("csrc/**/*.cc", recursive=True))
    # -fno-math-errno: nothing reads errno, and with it GCC vectorises loops that call sqrt
    # (Adam, RMSProp, sqrt itself: 2-3x); otherwise it keeps them scalar to set errno.
    cxxflags = ["-fopenmp", "-Wall", "-Wno-unknown-pragmas", "-fno-math-errno"]
    march = os.environ.get("MINISINGA_MARCH", "native")  # "" for a portable build
    cxxflags += ["-O0", "-g"] if DEBUG else ["-O3"] + ([f"-march={march}"] if march else [])
    macros = []
    include_dirs = [os.path.join(ROOT, "csrc"), inc]
    library_dirs = [libdir]
    libraries = [lib]
    # --exclude-libs: where the toolchain links libstdc++ (or anything) statically -- the GPU
    # machine's build embedded libstdc++ -- its symbols stay private to _core. Exported, they
    # mixed with the libstdc++ that torch loads: messages lost their numbers, and raising an
    # exception crashed the interpreter.
    link_args = ["-fopenmp", "-Wl,--exclude-libs,ALL"]
    link_args += os.environ.get("MINISINGA_LDFLAGS", "").split()
    link_args += [f"-Wl,-rpath,{libdir}", "-Wl,-rpath,$ORIGIN/../scipy_openblas32/lib"]
    sanitize = os.environ.get("MINISINGA_SANITIZE", "")
    cuda = find_cuda()
    if sanitize:
        if cuda and cuda[0] != "emu":  # nvcc found without MINISINGA_CUDA=1
            sys.exit(SANITIZE_REFUSAL)
        cxxflags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"]
        link_args += [f"-fsanitize={sanitize}"]
    if cuda:
        _, cinc, clib, clibs = cuda
        sources += sorted(glob.glob("csrc/**/*.cu", recursive=True))
        if cuda[0] == "emu":
            sources.append("tests/cuda_emu/runtime.cc")
            if MEMTRACE:
                sources.append("tests/cuda_emu/memtrace.cc")
        macros.append(("MS_WITH_CUDA", "1"))
        include_dirs += cinc
        library_dirs += clib
        libraries += clibs
        link_args += [f"-Wl,-rpath,{d}" for d in clib]
    kind = "with CUDA" + (" (emulated)" if cuda[0] == "emu" else "") if cuda else "without CUDA"
    print(f"minisinga: building {kind}, {len(sources)} sources")
    # Headers too: a change to one rebuilds the extension (ccache recompiles what it affects).
    headers = sorted(glob.glob("csrc/**/*.h", recursive=True) +
                     glob.glob("csrc/**/*.cuh", recursive=True))
    if cuda and cuda[0] == "emu":  # the emulator's headers and launch rewriting
        headers += sorted(f for f in glob.glob("tests/cuda_emu/include/**/*", recursive=True)
                          if os.path.isfile(f)) + ["tests/cuda_emu/launches.py"]
    return Pybind11Extension(
        "minisinga._core",
        sources,
        depends=headers,
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        libraries=libraries,
        define_macros=macros,
        extra_compile_args=cxxflags,
        extra_link_args=link_args,
        cxx_std=17,
    )


ParallelCompile("MINISINGA_JOBS", default=os.cpu_count() or 2).install()
setup(ext_modules=[make_extension()], cmdclass={"build_ext": BuildExt})
