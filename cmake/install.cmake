# `cmake --install`: the vdtu command, the programs a node starts, the public
# headers, the libraries a VPE program links, a CMake package
# (find_package(vdtu) -> vdtu::pe, vdtu::semper, ...) and a pkg-config file.
include(CMakePackageConfigHelpers)

install(TARGETS vdtu RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Started by the node or by `vdtu demo`/`vdtu cluster`, not by people: libexec.
# hostile_pe and sandbox_probe are test fixtures and stay in the build tree.
install(TARGETS semper_kernel dtu_test_pe kernel_test_vpe lwip_echo RUNTIME DESTINATION ${VDTU_INSTALL_PROGRAMDIR})
# `vdtu vm` builds its guest image with this script, found like the programs above.
install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/vm-image.sh DESTINATION ${VDTU_INSTALL_PROGRAMDIR})

# The libraries a program built against vdtu may link, lowest layer first;
# each gets the exported name vdtu::<name>.
set(vdtu_exported_libraries
  vdtu_common    # RAII helpers, the kernel interface constants (kif.hpp)
  vdtu_channel   # the shared-memory ring (channel.hpp)
  vdtu_protocol  # what PEs and the node speak
  vdtu_pe        # a PE's DTU (dtu.hpp): what every VPE program links
  vdtu_semper    # the VPE side of the kernel interface (semper.hpp)
  vdtu_net)      # a port on `vdtu switch` (net.hpp)
foreach(library IN LISTS vdtu_exported_libraries)
  string(REPLACE "vdtu_" "" short ${library})
  set_target_properties(${library} PROPERTIES EXPORT_NAME ${short})
endforeach()
install(TARGETS ${vdtu_exported_libraries} EXPORT vdtuTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/vdtu DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(vdtu_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/vdtu)
install(EXPORT vdtuTargets NAMESPACE vdtu:: DESTINATION ${vdtu_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/vdtuConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/vdtuConfig.cmake INSTALL_DESTINATION ${vdtu_cmake_dir}
                              PATH_VARS VDTU_INSTALL_PROGRAMDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vdtuConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/vdtuConfig.cmake ${PROJECT_BINARY_DIR}/vdtuConfigVersion.cmake
        DESTINATION ${vdtu_cmake_dir})

# pkg-config: one module, vdtu, with every exported library (static archives:
# only what a program uses is linked).
set(vdtu_pc_libs "")
foreach(library IN LISTS vdtu_exported_libraries)
  string(PREPEND vdtu_pc_libs "-l${library} ")  # higher layers first, for the static linker
endforeach()
# Relocatable (a .deb installs under /usr whatever the configured prefix was).
file(RELATIVE_PATH vdtu_pc_prefix ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" vdtu_pc_prefix "${vdtu_pc_prefix}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/vdtu.pc.in ${PROJECT_BINARY_DIR}/vdtu.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/vdtu.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The example files (bare program names: they run with the installed programs)
# and the example VPE project.
install(FILES ${PROJECT_SOURCE_DIR}/examples/messaging.toml ${PROJECT_SOURCE_DIR}/examples/kernel.toml
              ${PROJECT_SOURCE_DIR}/examples/cluster.toml ${PROJECT_SOURCE_DIR}/examples/switch.toml
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/vpe-project ${PROJECT_SOURCE_DIR}/examples/three-hosts
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
