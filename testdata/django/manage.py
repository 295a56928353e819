#!/usr/bin/env python3
"""The payroll application's schema, as Django creates it (see README.md)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payroll.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
