module github.com/nominacl/consolidation/worker

go 1.26
