# Shell helper for suites that are one command: writes a JUnit file with one test case.
# junit_case SUITE CASE EXIT_CODE LOG_FILE
junit_case() {
  local suite=$1 case=$2 rc=$3 log=$4 body=""
  if [ "$rc" -ne 0 ]; then
    body="<failure message=\"exit $rc\"><![CDATA[$(tail -n 40 "$log" | sed 's/]]>/]] >/g')]]></failure>"
  fi
  printf '<testsuite name="%s" tests="1" failures="%d"><testcase classname="%s" name="%s">%s</testcase></testsuite>\n' \
    "$suite" "$([ "$rc" -eq 0 ] && echo 0 || echo 1)" "$suite" "$case" "$body" > "$KROUTE_RESULTS/$suite.xml"
}
