"""What the BLAS library numpy loaded says about itself, for the bench peers' reports."""
import ctypes


def blas_threads():
    """Threads of the BLAS library loaded into this process, through its own query function."""
    names = {
        "openblas": ["openblas_get_num_threads", "openblas_get_num_threads64_",
                     "scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_"],
        "mkl_rt": ["MKL_Get_Max_Threads"],
        "blis": ["bli_thread_get_num_threads"],
    }
    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:
        return None
    for path in sorted(libraries):
        base = path.rsplit("/", 1)[-1].lower()
        for key, symbols in names.items():
            if key not in base:
                continue
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            for symbol in symbols:
                function = getattr(library, symbol, None)
                if function is not None:
                    function.restype = ctypes.c_int
                    return int(function())
    return None
