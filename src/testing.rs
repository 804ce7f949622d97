//! Helpers shared by the unit tests of several modules.

use std::io;
use std::sync::{Arc, Mutex};

/// Collects what a log subscriber writes, for a test to read back. Clones share the buffer, so
/// one clone goes to the subscriber's writer and the test keeps another.
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// A log captured from what this thread logs at `info` and above (without colour) while
    /// the returned guard lives.
    pub(crate) fn on_this_thread() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

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
