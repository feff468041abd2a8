/* Status names and messages, generated from the single table in status.h. */
#include "tdecomp/status.h"

const char *td_strerror(td_status status)
{
    switch (status) {
#define TD__STATUS_MSG(name, num, msg) case name: return msg;
        TD_STATUS_TABLE(TD__STATUS_MSG)
#undef TD__STATUS_MSG
    default: return "unknown status";
    }
}

const char *td_status_name(td_status status)
{
    switch (status) {
#define TD__STATUS_NAME(name, num, msg) case name: return #name;
        TD_STATUS_TABLE(TD__STATUS_NAME)
#undef TD__STATUS_NAME
    default: return "TD_UNKNOWN";
    }
}

const char *td_version(void) { return TD_VERSION_STRING; }
