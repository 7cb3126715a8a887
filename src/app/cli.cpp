#include "app/cli.h"

#include <cstdio>

namespace ds::app {

int RunCli(int, char**) {
  std::puts("devstream " DEVSTREAM_VERSION);
  return 0;
}

}  // namespace ds::app
