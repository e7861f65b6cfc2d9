//! Sending a range of a segment file to a client socket with `sendfile(2)`: the kernel moves
//! the bytes from the page cache to the socket, and they never enter the broker's memory.

use std::io;
use std::os::fd::AsRawFd;
use strom_log::FileRange;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Send all of `range` to `tcp`, waiting for the socket to drain as needed.
pub async fn send_range(tcp: &TcpStream, range: &FileRange) -> io::Result<()> {
    let mut offset = libc::off_t::try_from(range.position())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position out of range"))?;
    let mut left = range.len();
    while left > 0 {
        tcp.writable().await?;
        let sent = tcp.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors stay open for the call (the socket and the range's file
            // are borrowed), and sendfile writes only to `offset`, a live local.
            let n = unsafe {
                libc::sendfile(tcp.as_raw_fd(), range.file().as_raw_fd(), &mut offset, left)
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            // The file is shorter than the range: truncated under us. The size prefix is
            // already out, so the connection cannot go on.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside the fetched range",
                ));
            }
            Ok(n) => left -= n.min(left),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
