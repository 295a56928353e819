module github.com/nominacl/consolidation/proto

go 1.26
