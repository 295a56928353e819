# Chart of docs/benchmarks.md: gnuplot -e "csv='bench.csv'" docs/benchmarks.gp > docs/benchmarks.png
# (bench.csv from: bin/benchmark -csv bench.csv; gnuplot from Debian's gnuplot-nox)
set terminal pngcairo size 900,560 noenhanced font "sans,11"
set datafile separator ","
set key top left
set logscale xy
set grid
set xlabel "employees in the closing"
set ylabel "seconds"
set title "Consolidation (coordinator + 2 workers) vs the single-stream COPY floor"
set format x "%.0s%c"
plot csv using 1:4 skip 1 with linespoints lw 2 pt 7 title "consolidation, Consolidate to final state", \
     csv using 1:5 skip 1 with linespoints lw 2 pt 5 dt 2 title "floor: COPY of the same result rows, one stream"
