# Runs one libFuzzer target over a private copy of its seed corpus, so the run never writes into
# the source tree. Invoked by ctest: cmake -DFUZZER=... -DCORPUS=... -DWORK=... -DSECONDS=... -P
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
file(GLOB seeds "${CORPUS}/*")
if(NOT seeds)
  message(FATAL_ERROR "empty seed corpus: ${CORPUS}")
endif()
file(COPY ${seeds} DESTINATION "${WORK}/corpus")
execute_process(
  COMMAND "${FUZZER}" -max_total_time=${SECONDS} -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
          "-artifact_prefix=${WORK}/artifacts/" "${WORK}/corpus"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzzer ${FUZZER} failed (exit ${rc}); crashing input kept in ${WORK}/artifacts")
endif()
