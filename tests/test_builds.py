"""Builds that cannot be left half-done (issue 11, part 2): the cpu-float kernel cache and the
csim library are written under temporary names and renamed, built once under a lock by
concurrent first uses, rebuilt once when damaged, foreign or lacking symbols, and never crash
the process; the cache directory is validated with a per-user fallback; the numpy fallback of
cpu-float says so and `bench` names it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenet5_pynq import bench, native, sharedlib
from lenet5_pynq import csim_library as csim
from lenet5_pynq.backends.cpu import FloatBackend

REPO = Path(__file__).resolve().parents[1]
KERNEL = "float_net.c"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("LENET5_CACHE", str(d))
    monkeypatch.setattr(native, "_warned", set())
    return d


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def _built(cache) -> Path:
    return native.build(KERNEL, native.network_defines())


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------- the ELF check
def test_check_elf_names_what_is_wrong(tmp_path, cache):
    good = _built(cache)
    assert sharedlib.check_elf(good) is None
    cases = {
        "empty": b"",
        "text": b"hello, not a library\n",
        "truncated": good.read_bytes()[: good.stat().st_size // 2],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert "empty" in sharedlib.check_elf(tmp_path / "empty")
    assert "not an ELF" in sharedlib.check_elf(tmp_path / "text")
    assert "truncated" in sharedlib.check_elf(tmp_path / "truncated")
    assert sharedlib.check_elf(tmp_path / "nothing") == "missing"


# ------------------------------------------------------------- the cpu-float cache
def test_truncated_cached_library_is_rebuilt_not_a_bus_error(cache):
    lib = _built(cache)
    data = lib.read_bytes()
    lib.write_bytes(data[: len(data) // 3])
    run = subprocess.run(
        [sys.executable, "-c", "from lenet5_pynq.backends.cpu import FloatBackend; print(FloatBackend().engine)"],
        capture_output=True,
        text=True,
        env=_env(LENET5_CACHE=str(cache)),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-800:]
    assert run.stdout.strip() == "c"
    assert sharedlib.check_elf(lib) is None


@pytest.mark.parametrize("damage", ["empty", "text", "foreign"])
def test_damaged_or_foreign_library_is_rebuilt_once(cache, damage):
    lib = _built(cache)
    if damage == "empty":
        lib.write_bytes(b"")
    elif damage == "text":
        lib.write_text("garbage")
    else:  # a whole shared object without lenet5_float_forward
        foreign = cache / "foreign.c"
        foreign.write_text("int something_else(void) { return 1; }\n")
        subprocess.run(["cc", "-shared", "-fPIC", str(foreign), "-o", str(lib)], check=True)
    backend = FloatBackend()
    assert backend.engine == "c"
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    assert np.allclose(backend.logits(images), FloatBackend(engine="numpy").logits(images), atol=1e-3)


def test_library_still_broken_after_the_rebuild_is_reported(cache, monkeypatch):
    lib = _built(cache)
    lib.write_bytes(b"")
    monkeypatch.setattr(native, "_compile", lambda cc, src, defines, out: (out.write_bytes(b""), out)[1])
    with pytest.raises(native.BuildError, match=r"empty file.*also after a rebuild"):
        native.load(KERNEL, native.network_defines())
    assert FloatBackend().engine == "numpy"  # auto falls back


@pytest.mark.parametrize("value", ["", ".", "relative/dir"])
def test_cache_dir_must_be_absolute(monkeypatch, tmp_path, value):
    monkeypatch.setenv("LENET5_CACHE", value)
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setattr(native, "fallback_cache_dir", lambda: tmp_path / "fallback")
    monkeypatch.setattr(native, "default_cache_dir", lambda: tmp_path / "home-cache")
    monkeypatch.chdir(tmp_path)
    got = native.cache_dir()
    assert got.is_absolute()
    if value == "":
        assert got == tmp_path / "home-cache"  # empty means unset
    else:
        assert got == tmp_path / "fallback"
        assert any("is not an absolute path" in w for w in native._warned)


def test_uncreatable_cache_falls_back_to_a_private_temporary_cache(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LENET5_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setattr(native, "fallback_cache_dir", lambda: tmp_path / "fallback")
    native.cache_dir()
    native.cache_dir()
    err = capsys.readouterr().err
    assert err.count("cannot be created") == 1 and str(tmp_path / "fallback") in err  # said once
    assert oct((tmp_path / "fallback").stat().st_mode & 0o777) == oct(0o700)
    assert native.load(KERNEL, native.network_defines())[1] is not None


def test_unusable_cache_gives_the_numpy_fallback_not_a_traceback(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LENET5_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setattr(native, "fallback_cache_dir", lambda: blocker / "fallback")
    backend = FloatBackend()
    assert backend.engine == "numpy" and backend.label == "cpu-float (numpy)"
    assert "cpu-float runs on numpy" in capsys.readouterr().err


def test_unwritable_cache_at_build_time_falls_back(cache, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(native.tempfile, "mkstemp", refuse)
    with pytest.raises(native.BuildError, match="Permission denied"):
        native.build(KERNEL, native.network_defines())
    assert FloatBackend().engine == "numpy"


def test_no_compiler_is_said_once_and_bench_names_the_numpy_engine(cache, monkeypatch, capsys):
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    first, second = FloatBackend(), FloatBackend()
    assert first.engine == second.engine == "numpy"
    err = capsys.readouterr().err
    assert err.count("cpu-float runs on numpy") == 1 and "no C compiler" in err
    images = np.zeros((4, 28, 28), np.uint8)
    row = bench.time_backend(first, images, 2, 0.0)
    assert row["backend"] == "cpu-float (numpy)"
    assert FloatBackend.name == "cpu-float"


def test_failed_compile_leaves_no_temporary_file(cache, monkeypatch):
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    with pytest.raises(native.BuildError):
        native.build(KERNEL, native.network_defines())
    assert _leftovers(cache) == [] and not list(cache.glob("*.so"))


def test_concurrent_first_uses_build_once(cache):
    code = "from lenet5_pynq.backends.cpu import FloatBackend; import sys; sys.exit(FloatBackend().engine != 'c')"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=_env(LENET5_CACHE=str(cache)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [(p.wait(120), p.stderr.read().decode()[-500:]) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    assert len(list(cache.glob("float_net-*.so"))) == 1
    assert _leftovers(cache) == []


# ------------------------------------------------------------------- the csim library
def test_makefile_links_every_target_to_a_temporary_name():
    if shutil.which("make") is None:
        pytest.skip("no make")
    run = subprocess.run(
        ["make", "-n", "-B", "-C", str(REPO / "hls_src"), "lib", "csim", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-800:]
    compiles = [ln for ln in run.stdout.splitlines() if ln.startswith(("g++", "c++")) or (" -o " in ln and "g++" in ln)]
    assert compiles
    for line in compiles:
        out = line.split(" -o ")[1].split()[0]
        assert out.endswith(".tmp") and "&& mv -f" in line and "rm -f" in line, line


@pytest.fixture
def hls_copy(tmp_path, monkeypatch):
    """A copy of hls_src with its up-to-date build (so only the link is redone), csim pointed at it."""
    if csim.build() is None or sharedlib.check_elf(csim.library_path()) is not None:
        pytest.skip("no csim library to copy")
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "hls_src", root / "hls_src", symlinks=True, copy_function=shutil.copy2)
    (root / "lenet5_pynq").symlink_to(REPO / "lenet5_pynq")
    monkeypatch.setattr(csim, "HLS_SRC", root / "hls_src")
    monkeypatch.setattr(csim, "LIBRARY", root / "hls_src" / "build" / "liblenet5_csim.so")
    monkeypatch.setattr(csim, "_lib", None)
    monkeypatch.delenv(csim.ENV_LIB, raising=False)
    return root / "hls_src"


def _newer(path: Path) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime + 100, st.st_mtime + 100))


@pytest.mark.parametrize("damage", ["empty", "truncated", "text"])
def test_damaged_csim_library_that_make_takes_as_current_is_rebuilt(hls_copy, damage):
    lib = hls_copy / "build" / "liblenet5_csim.so"
    data = lib.read_bytes()
    lib.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "text": b"not a library"}[damage])
    _newer(lib)  # newer than its inputs: make alone would call it current
    ffi, handle = csim.library()
    assert ffi.string(handle.lenet5_csim_vlnv())
    assert sharedlib.check_elf(lib) is None
    assert not list((hls_copy / "build").glob("*.tmp"))


def test_prebuilt_csim_library_that_is_damaged_is_reported(tmp_path, monkeypatch):
    bad = tmp_path / "liblenet5_csim.so"
    bad.write_bytes(b"")
    monkeypatch.setenv(csim.ENV_LIB, str(bad))
    monkeypatch.setattr(csim, "_lib", None)
    with pytest.raises(csim.BackendUnavailable, match=r"liblenet5_csim.so: empty file"):
        csim.library()


def test_concurrent_first_csim_uses_all_succeed(hls_copy):
    (hls_copy / "build" / "liblenet5_csim.so").unlink()
    code = (
        "import sys; from pathlib import Path; from lenet5_pynq import csim_library as csim; "
        f"csim.HLS_SRC = Path({str(hls_copy)!r}); csim.LIBRARY = csim.HLS_SRC / 'build' / 'liblenet5_csim.so'; "
        "ffi, lib = csim.library(); print(ffi.string(lib.lenet5_csim_vlnv()).decode())"
    )
    env = _env()
    env.pop(csim.ENV_LIB, None)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    results = [(p.wait(300), p.stderr.read().decode()[-500:]) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    assert not list((hls_copy / "build").glob("*.tmp"))


# ------------------------------------------- the kernels' worker pool (native/work_pool.h)
def _pool_backends():
    """Both kernels with two threads, and the single-thread answers they must give."""
    from lenet5_pynq.backends.cpu import GoldenBackend

    def answers(backend, images):
        out = backend.logits(images) if isinstance(backend, FloatBackend) else backend.predict(images).logits
        return np.asarray(out)

    return {
        "cpu-float": (FloatBackend(engine="c", threads=2), FloatBackend(engine="c", threads=1)),
        "cpu": (GoldenBackend(engine="c", threads=2), GoldenBackend(engine="c", threads=1)),
    }, answers


def _pool_images(count: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def test_pool_batch_sizes_around_its_blocks_give_the_single_thread_bits():
    """Every batch from 0 to 21 images (blocks of 4 images for cpu-float, 2 for cpu, and the
    smallest parallel calls) and 101: two threads give the bits of one."""
    pairs, answers = _pool_backends()
    images = _pool_images(101)
    for name, (two, one) in pairs.items():
        for n in [*range(22), 101]:
            assert np.array_equal(answers(two, images[:n]), answers(one, images[:n])), (name, n)


def test_pool_many_concurrent_python_threads_on_both_kernels():
    """Eight Python threads calling both kernels at once (the pool serves one call; the others
    run alone): every answer is the single-thread one, and no call hangs."""
    import threading

    pairs, answers = _pool_backends()
    images = _pool_images(64)
    sizes = (1, 5, 10, 13, 64)
    want = {(name, n): answers(one, images[:n]) for name, (_, one) in pairs.items() for n in sizes}
    wrong, errors = [], []

    def work(seed):
        order = np.random.default_rng(seed).permutation([(name, n) for name in pairs for n in sizes] * 4)
        try:
            for name, n in order:
                if not np.array_equal(answers(pairs[name][0], images[: int(n)]), want[name, int(n)]):
                    wrong.append((name, n))
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a concurrent call hung"
    assert not errors and not wrong, (errors, wrong[:5])


def _child_compares(pairs_and_want):
    pairs, want, images = pairs_and_want
    from lenet5_pynq.backends.cpu import FloatBackend as Float

    for name, two in pairs.items():
        got = two.logits(images) if isinstance(two, Float) else two.predict(images).logits
        if not np.array_equal(np.asarray(got), want[name]):
            sys.exit(3)
    sys.exit(0)


def test_pool_in_a_forked_child_after_the_parent_used_it():
    """multiprocessing's fork: the child inherits the pool's state but none of its workers; its
    calls with two threads must still finish, with the parent's answers."""
    import multiprocessing

    pairs, answers = _pool_backends()
    images = _pool_images(40)
    want = {name: answers(two, images) for name, (two, _) in pairs.items()}  # the parent's pools now have workers
    child = multiprocessing.get_context("fork").Process(
        target=_child_compares, args=(({name: two for name, (two, _) in pairs.items()}, want, images),)
    )
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child's call hung")
    assert child.exitcode == 0, f"the forked child's answers differ (exit code {child.exitcode})"
    for name, (two, _) in pairs.items():  # and the parent's pool still works
        assert np.array_equal(answers(two, images), want[name])


def test_pool_with_more_threads_than_processors():
    from lenet5_pynq.backends.cpu import GoldenBackend

    many = 4 * (os.cpu_count() or 1) + 3
    images = _pool_images(200)
    one = FloatBackend(engine="c", threads=1).logits(images)
    assert np.array_equal(FloatBackend(engine="c", threads=many).logits(images), one)
    exact = GoldenBackend(engine="c", threads=1).predict(images).logits
    assert np.array_equal(GoldenBackend(engine="c", threads=many).predict(images).logits, exact)


def test_shared_pool_header_is_in_the_cache_key(cache, monkeypatch, tmp_path):
    """A change to work_pool.h, which no kernel is named after, must rebuild the kernels."""
    copy = tmp_path / "native"
    shutil.copytree(native.HERE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    monkeypatch.setattr(native, "HERE", copy)
    before = native.build("fixed_net.c", _fixed_defines())
    with open(copy / "work_pool.h", "a") as f:
        f.write("\n/* changed */\n")
    after = native.build("fixed_net.c", _fixed_defines())
    assert before != after and before.exists() and after.exists()


def _fixed_defines():
    from lenet5_pynq.backends.cpu import GoldenBackend, fixed_defines

    return fixed_defines(GoldenBackend(engine="numpy").spec)
