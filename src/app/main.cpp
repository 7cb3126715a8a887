#include "app/cli.h"

int main(int argc, char** argv) {
  return ds::app::RunCli(argc, argv);
}
