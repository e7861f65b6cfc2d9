//! Positional reads into uninitialised memory.
//!
//! Consumer and follower fetches send records straight from the file (`FileRange`); what still
//! reads them into memory (`Log::read`: coordinators loading their state, fetch ranges over the
//! splice limit) reads up to a megabyte at a time. Zero-filling that buffer first costs a memset,
//! and with jemalloc a zeroed allocation of that size is served by discarding pages
//! (MADV_DONTNEED), so each read also page-faulted its buffer back in.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Read exactly `len` bytes at `offset` into a new vector, without initialising it first.
pub(crate) fn read_exact_at(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        let at = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
        // SAFETY: pread writes at most `spare.len()` bytes through the pointer, which points at
        // the vector's unused, allocated capacity; it never reads from it.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast::<libc::c_void>(),
                spare.len(),
                at,
            )
        };
        match n {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ));
            }
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => {
                done += n as usize;
                // SAFETY: the first `done` bytes were written by pread above (this call and
                // the earlier ones), and `done <= len <= capacity`.
                unsafe { buf.set_len(done) };
            }
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_the_range_and_refuses_a_short_file() {
        let mut f = tempfile::tempfile().expect("tempfile");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        f.write_all(&data).expect("write");
        assert_eq!(
            read_exact_at(&f, 5_000, 1_234).expect("read"),
            data[1_234..6_234]
        );
        assert_eq!(
            read_exact_at(&f, 0, 10_000).expect("empty read"),
            Vec::<u8>::new()
        );
        let short = read_exact_at(&f, 100, 9_950).expect_err("past the end");
        assert_eq!(short.kind(), io::ErrorKind::UnexpectedEof);
    }
}
