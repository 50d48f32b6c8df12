/*
 * json_scan.h moved next to the ABI header: native/include/json_scan.h. This file keeps the old include path
 * (-I plugins-c/include) working.
 */
#include "../../native/include/json_scan.h"
