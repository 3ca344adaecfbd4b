# `cpack -G DEB` (in the build directory): a Debian package of what
# cmake/install.cmake installs. Run-time dependencies come from the
# executables (dpkg-shlibdeps); building VPE programs against the package
# also needs the fmt headers, and `vdtu cluster --netns` needs ip(8).
set(CPACK_PACKAGE_NAME vdtu)
set(CPACK_PACKAGE_VENDOR "vdtu")
if(NOT CPACK_PACKAGE_CONTACT)
  set(CPACK_PACKAGE_CONTACT "vdtu developers <vdtu@localhost>")  # -DCPACK_PACKAGE_CONTACT=... for a real one
endif()
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
    "vdtu runs DTU-based capability systems on Linux: shared-memory channels with the gem5 DTU header, a node process with the endpoint table, the SemperOS kernel, nodes joined by a sealed UDP bridge, and an Ethernet switch. This package holds the vdtu command, the PE programs it starts, and the headers, static libraries, CMake package and pkg-config file for building VPE programs.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)  # the executables without their symbol tables
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libfmt-dev")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "iproute2, cmake, pkg-config, g++ | clang")
include(CPack)
