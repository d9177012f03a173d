//! Read buffers lent to connections for one read and the handling of its bytes.
//!
//! A publisher's connection spends most of its time asleep until its next paced read
//! (`Limits::read_interval`). A buffer of its own (`max_buffered_bytes`, 64 KiB, which its
//! batched reads fill, so every page of it stays resident) would sit idle meanwhile; borrowed
//! from here once bytes wait to be read (after the sleep, and after the socket is ready when
//! the connection waits for bytes: `Quiet::poll_read_ready`) and given back once they are
//! handled, the buffers in use are about as many as the connections reading at that moment.

use std::sync::Mutex;

/// Free buffers kept beyond this are dropped: a burst of connections reading at once does not
/// keep its buffers.
const KEEP: usize = 32;

pub(crate) struct ReadBuffers {
    size: usize,
    free: Mutex<Vec<Box<[u8]>>>,
}

impl ReadBuffers {
    pub(crate) fn new(size: usize) -> Self {
        Self { size: size.max(1), free: Mutex::new(Vec::new()) }
    }

    pub(crate) fn take(&self) -> Box<[u8]> {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        free.unwrap_or_else(|| vec![0; self.size].into_boxed_slice())
    }

    pub(crate) fn give(&self, buffer: Box<[u8]>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < KEEP {
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_lent_again_and_the_spares_are_bounded() {
        let buffers = ReadBuffers::new(16);
        let first = buffers.take();
        assert_eq!(first.len(), 16);
        let at = first.as_ptr();
        buffers.give(first);
        assert_eq!(buffers.take().as_ptr(), at, "reused, not allocated again");
        let many: Vec<_> = (0..KEEP + 8).map(|_| buffers.take()).collect();
        many.into_iter().for_each(|b| buffers.give(b));
        assert_eq!(buffers.free.lock().unwrap().len(), KEEP);
    }
}
