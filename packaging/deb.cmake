# The Debian package (CPack DEB): `make package` or `cmake --build build --target package` gives
# build/netbackd_<version>_amd64.deb from the install rules above. Needs dpkg-dev (shlibdeps)
# and file.
set(NETBACKD_DEB_MAINTAINER "netbackd developers <netbackd@example.org>"
  CACHE STRING "Maintainer field of the Debian package")

# DPDK loads its bus and mempool drivers as plugins at run time: no ELF dependency shows them to
# dpkg-shlibdeps, so they are named here, with the ABI of the DPDK we build against.
file(REAL_PATH ${RTE_BUS_VDEV} _vdev)
string(REGEX MATCH "\\.so\\.([0-9]+)" _ ${_vdev})
set(dpdk_abi ${CMAKE_MATCH_1})
if(NOT dpdk_abi)
  message(FATAL_ERROR "cannot tell DPDK's ABI from ${_vdev}")
endif()

# Debian's changelog of a native package: one entry, the version (and commit) built. The date
# follows SOURCE_DATE_EPOCH when set, so a rebuild is reproducible.
string(TIMESTAMP changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(changelog_note "Built from the source tree")
if(NETBACKD_GIT_COMMIT)
  set(changelog_note "Built from git commit ${NETBACKD_GIT_COMMIT}")
endif()
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/changelog
  "netbackd (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
  "  * ${changelog_note}.\n\n"
  " -- ${NETBACKD_DEB_MAINTAINER}  ${changelog_date}\n")
add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz
  COMMAND gzip -9nf ${CMAKE_CURRENT_BINARY_DIR}/changelog -c > ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz
  DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/changelog)
add_custom_target(netbackd_changelog ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz ${CMAKE_CURRENT_SOURCE_DIR}/deb/copyright
  DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME netbackd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${NETBACKD_DEB_MAINTAINER})
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR})
# The install rules pick /etc and the unit dir from the prefix at install time: CPack must
# install with DESTDIR and prefix /usr, not into a prefix inside its staging dir.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "userspace Xen network backend for driver domains")
# CPack makes the control file's Description from the summary and this text (lines indented,
# empty lines as " .").
set(CPACK_PACKAGE_DESCRIPTION "netbackd replaces Linux's in-kernel xen-netback in a Xen driver domain. It
negotiates with each guest's netfront through xenstore, maps the guests'
rings through grant tables and event channels, and switches frames between
guests and the NIC, driven through a DPDK poll-mode driver, on polling
data-plane workers. It writes hotplug-status itself: no udev rules, vif
scripts or xl devd are needed in the driver domain.

The package also holds xensim, a simulated Xen host (hypervisor model and
xenstored) to try netbackd without Xen, and netbackd-pmd-probe.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# systemd-sysusers makes the unit's user in the postinst.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "librte-bus-vdev${dpdk_abi}, librte-mempool-ring${dpdk_abi}, systemd | systemd-standalone-sysusers")
# af_xdp: a PV driver domain's uplink; bus-pci: a NIC given by PCI address; dpdk: devbind and
# the common NIC drivers.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
  "librte-net-af-xdp${dpdk_abi}, librte-bus-pci${dpdk_abi}, dpdk")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "xenstore-utils")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_SOURCE_DIR}/deb/conffiles ${CMAKE_CURRENT_SOURCE_DIR}/deb/postinst
  ${CMAKE_CURRENT_SOURCE_DIR}/deb/prerm ${CMAKE_CURRENT_SOURCE_DIR}/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
