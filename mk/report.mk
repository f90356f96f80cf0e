# The benchmark report (bench/report/run.py); included by the Makefile, whose `bench` target is the full run.
# See bench/README.md, "The report".

.PHONY: bench-quick bench-table bench-render

bench-quick: all cluster-tools ## the benchmark report in quick mode (<= 5 min): bench/results/report-quick/REPORT.md
	@/usr/bin/python3 bench/report/run.py --quick --build $(abspath $(BUILD))

bench-table: all ## route table microbenchmarks only (~1 min); writes bench/results/table.md
	@bash bench/run.sh $(abspath $(BUILD))

bench-render: ## rewrite bench/REPORT.md and its plots from the last full run's results (no measuring)
	@/usr/bin/python3 bench/report/run.py --render-only
