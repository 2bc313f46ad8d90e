from setuptools import find_packages, setup

setup(
    name="lenet5-pynq",
    version="0.1.0",
    description="LeNet-5 on MNIST for PYNQ: FPGA overlay, bit-exact golden model, CPU and CUDA peers",
    python_requires=">=3.10",
    packages=find_packages(include=["lenet5_pynq", "lenet5_pynq.*"]),
    package_data={"lenet5_pynq": ["data/*.npz", "data/*.json", "data/samples/*.png", "data/samples/*.md", "native/*.c", "native/*.h"]},
    install_requires=["numpy>=1.21", "pillow>=9", "cffi>=1.15"],
    extras_require={
        "train": ["tensorflow-cpu==2.20.0", "tqdm"],
        "hls": ["hls4ml==1.3.0"],
        "board": ["pynq==4.0.0"],
        "bench": ["matplotlib"],
        "test": ["pytest>=7", "hls4ml==1.3.0", "matplotlib"],
    },
    entry_points={"console_scripts": ["lenet5-classify=lenet5_pynq.classify:main"]},
)
