//! Helpers shared by the unit tests of several modules.

use std::io;
use std::sync::{Arc, Mutex};

/// Collects what a log subscriber writes, for a test to read back. Clones share the buffer, so
/// one clone goes to the subscriber's writer and the test keeps another.
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("captured log").clone()).expect("UTF-8 log")
    }
}

impl io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("captured log")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
