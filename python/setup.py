"""pip install ./python: the lens module, with liblens.so inside it when one is found at build time.

Where the library comes from: $LENS_LIBRARY (the file, or a folder holding liblens.so), else the
source tree's build/liblens.so (`make shared`). When one is found it is copied into the installed
package (lens/liblens.so) and the wheel is tagged for this platform; when none is, the module is
installed alone and finds the library at run time (LENS_LIBRARY, or the system's loader after
`make install`). docs/python.md has the details."""
import os
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def library():
    env = os.environ.get("LENS_LIBRARY")
    if env:
        path = os.path.join(env, "liblens.so") if os.path.isdir(env) else env
    else:
        path = os.path.join(HERE, "..", "build", "liblens.so")
    return os.path.normpath(path) if os.path.isfile(path) else None


def version():
    """lensnet.h's LENSNET_VERSION_STRING (the toolkit's one version)."""
    try:
        with open(os.path.join(HERE, "..", "lensnet.h")) as f:
            return re.search(r'#define LENSNET_VERSION_STRING "([^"]+)"', f.read()).group(1)
    except (OSError, AttributeError):
        return "0+unknown"


class BuildPy(build_py):
    def run(self):
        super().run()
        lib = library()
        if lib:
            target = os.path.join(self.build_lib, "lens", "liblens.so")
            shutil.copyfile(lib, target)
            os.chmod(target, 0o755)
            print("lens: packaging %s as lens/liblens.so" % lib)
        else:
            print("lens: no liblens.so found ($LENS_LIBRARY, or ../build/liblens.so from `make shared`); the module will look "
                  "for it at run time")


class PlatformDistribution(Distribution):
    def has_ext_modules(self):
        return library() is not None


setup(
    name="lens",
    version=version(),
    description="The lens toolkit (lensnet.h, lenssim.h, lensviz.h) from Python: strong-lens finders, simulations, explanations",
    license="MIT",
    packages=["lens"],
    python_requires=">=3.7",
    install_requires=["numpy"],
    cmdclass={"build_py": BuildPy},
    distclass=PlatformDistribution,
    zip_safe=False,
)
