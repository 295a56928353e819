# Chart of docs/benchmarks.md: gnuplot -e "csv='bench.csv'" docs/benchmarks.gp > docs/benchmarks.png
# (bench.csv from: bin/benchmark -repeat 3 -csv bench.csv; gnuplot from Debian's gnuplot-nox).
# Columns: 1 schema, 2 employees, 6-8 wall median/min/max, 9-11 floor median/min/max,
# 15 wall µs per row, 16 floor µs per row. Bars are the lowest and highest of the repeats.
set terminal pngcairo size 1100,560 noenhanced font "sans,10"
set datafile separator ","
set multiplot layout 1,2
set key top left
set logscale xy
set grid
set xlabel "employees in the closing"
set format x "%.0s%c"
own(c) = strcol(1) eq "own" ? column(c) : NaN
dj(c) = strcol(1) eq "django" ? column(c) : NaN
set title "wall (Consolidate to final state) and floor (one COPY stream)"
set ylabel "seconds"
plot csv using 2:(own(6)):(own(7)):(own(8)) skip 1 with yerrorlines lw 2 pt 7 lc 1 title "own: wall", \
     csv using 2:(own(9)):(own(10)):(own(11)) skip 1 with yerrorlines lw 2 pt 5 dt 2 lc 1 title "own: floor", \
     csv using 2:(dj(6)):(dj(7)):(dj(8)) skip 1 with yerrorlines lw 2 pt 7 lc 2 title "django: wall", \
     csv using 2:(dj(9)):(dj(10)):(dj(11)) skip 1 with yerrorlines lw 2 pt 5 dt 2 lc 2 title "django: floor"
set title "cost per result row (medians)"
set ylabel "µs per result row"
set key top right
plot csv using 2:(own(15)) skip 1 with linespoints lw 2 pt 7 lc 1 title "own: wall", \
     csv using 2:(own(16)) skip 1 with linespoints lw 2 pt 5 dt 2 lc 1 title "own: floor", \
     csv using 2:(dj(15)) skip 1 with linespoints lw 2 pt 7 lc 2 title "django: wall", \
     csv using 2:(dj(16)) skip 1 with linespoints lw 2 pt 5 dt 2 lc 2 title "django: floor"
unset multiplot
