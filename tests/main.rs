//! Integration tests: the real binary against backups made by the real `gzip`, `openssl`
//! and `split` command-line tools, in temporary directories.

mod support;

mod bad_input;
mod byte_exact;
mod cli;
mod cloud;
mod faults;
mod hostile;
mod matrix;
mod pack_verify;
mod parallel;
mod pick;
mod props;
mod restore;
mod safety;
mod scale;
mod sources;
mod versions;
