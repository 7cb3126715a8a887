# deployment/scripts/deploy.sh and deployment/systemd/ (included by
# tests/CMakeLists.txt). Loopback only; every test makes its own temporary
# prefix, ports and (deploy_ssh) its own sshd, and removes them.
#   deploy_local          deploy.sh --target local: first deploy, no-op redeploy,
#                         a new version, a bad version rolled back (old one keeps
#                         serving, data kept, the pre-migration backup verifies)
#   deploy_ssh            the same over ssh (--host root@127.0.0.1) against a real
#                         sshd started on a free port with its own config and keys
#   deploy_systemd_units  systemd-analyze verify on deployment/systemd/ (works
#                         without a running systemd)
# deploy_ssh needs openssh-server and openssh-client (deps/debian-test-packages.txt;
# without them it fails and says so). deploy_systemd_units is skipped when
# systemd-analyze (package systemd, not in that list) is missing.
set(DS_DEPLOY_TESTS ${PROJECT_SOURCE_DIR}/tests/deployment)
add_test(NAME deploy_local
         COMMAND bash ${DS_DEPLOY_TESTS}/deploy_local_test.sh $<TARGET_FILE:devstream> ${PROJECT_SOURCE_DIR})
add_test(NAME deploy_ssh
         COMMAND bash ${DS_DEPLOY_TESTS}/deploy_ssh_test.sh $<TARGET_FILE:devstream> ${PROJECT_SOURCE_DIR})
add_test(NAME deploy_systemd_units
         COMMAND bash ${DS_DEPLOY_TESTS}/deploy_local_test.sh $<TARGET_FILE:devstream> ${PROJECT_SOURCE_DIR}
                 --systemd-units)
set_tests_properties(deploy_local deploy_ssh PROPERTIES LABELS integration TIMEOUT 180)
set_tests_properties(deploy_systemd_units PROPERTIES SKIP_RETURN_CODE 77)
set_tests_properties(deploy_systemd_units PROPERTIES LABELS integration TIMEOUT 60)
