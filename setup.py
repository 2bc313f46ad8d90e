from setuptools import find_packages, setup

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
    install_requires=["numpy>=1.21", "pillow>=9", "cffi>=1.15"],
    extras_require={
        "train": ["tensorflow-cpu==2.20.0"],
        "hls": ["hls4ml==1.3.0"],
        # Boards keep their image's pynq 3.x; constraints.txt pins 4.0.0 for x86 test machines.
        "board": ["pynq>=3.0"],
        "bench": ["matplotlib"],
        "test": ["pytest>=7", "hls4ml==1.3.0", "matplotlib", "nbformat", "nbclient", "ipykernel"],
    },
    entry_points={
        "console_scripts": ["lenet5-classify=lenet5_pynq.classify:main"],
        "pynq.overlays": ["lenet5-pynq = lenet5_pynq.overlays"],
        "pynq.notebooks": ["lenet5-pynq = lenet5_pynq.overlays"],
    },
)
