// The devstream command line: parses argv with CLI11 and dispatches to the
// subcommands (serve, migrate, plan, phase, task, version, ...). Exit codes:
// 0 success, 1 operation failed, 2 usage error (bad flag or value).
#pragma once

namespace ds::app {

int RunCli(int argc, char** argv);

}  // namespace ds::app
