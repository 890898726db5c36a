// Names for Xen's GNTST_* grant status codes, for messages and test failures.
#pragma once

#include <string_view>

#include <xen/grant_table.h>

namespace netbackd::platform {

constexpr std::string_view gntst_name(int status) {
    switch (status) {
    case GNTST_okay: return "GNTST_okay";
    case GNTST_general_error: return "GNTST_general_error";
    case GNTST_bad_domain: return "GNTST_bad_domain";
    case GNTST_bad_gntref: return "GNTST_bad_gntref";
    case GNTST_bad_handle: return "GNTST_bad_handle";
    case GNTST_bad_virt_addr: return "GNTST_bad_virt_addr";
    case GNTST_bad_dev_addr: return "GNTST_bad_dev_addr";
    case GNTST_no_device_space: return "GNTST_no_device_space";
    case GNTST_permission_denied: return "GNTST_permission_denied";
    case GNTST_bad_page: return "GNTST_bad_page";
    case GNTST_bad_copy_arg: return "GNTST_bad_copy_arg";
    case GNTST_address_too_big: return "GNTST_address_too_big";
    case GNTST_eagain: return "GNTST_eagain";
    case GNTST_no_space: return "GNTST_no_space";
    default: return "GNTST_unknown";
    }
}

} // namespace netbackd::platform
