// A loopback port nothing listens on right now, for servers a test starts
// (Prometheus, snmpd, openssl s_server): bound once to 127.0.0.1:0 and
// released. Another process may take it meanwhile; tests run in their own
// network namespaces, where nothing else does.
#pragma once

#include <sys/socket.h>

namespace nightshift::test {

int free_port(int type = SOCK_STREAM);

}  // namespace nightshift::test
