module github.com/nominacl/consolidation/coordinator

go 1.26
