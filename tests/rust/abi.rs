//! Tests of every C export, called as a C program would.
