//! Following the HTTP/2 frames a client sends, to tell when a header block is open.
//!
//! A request's head is a header block: a HEADERS frame and the CONTINUATION frames after it, up
//! to the one flagged END_HEADERS (RFC 9113 §4.3). Nothing may come between them on the
//! connection, so a client that drips a block holds up the whole connection; and h2 hands a
//! stream over only once its block is complete, so no request is under way to show it. The
//! header clock therefore follows the bytes themselves: [`HeaderBlocks`] reads the 9-byte frame
//! headers as they pass and skips the payloads, without decoding or copying anything.

/// Frame types (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
/// The END_HEADERS flag of HEADERS and CONTINUATION frames.
const END_HEADERS: u8 = 0x4;
/// The length of a frame header.
const FRAME_HEADER: usize = 9;
/// The length of the connection preface, which comes before the first frame.
const PREFACE: usize = 24;

/// Where a client's frames are, as far as header blocks go.
#[derive(Debug, Clone)]
pub(super) struct HeaderBlocks {
    /// Preface bytes still to pass over.
    preface_left: usize,
    /// The frame header being gathered, and how much of it has arrived.
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to pass over.
    payload_left: usize,
    /// Whether the end of the current frame's payload completes the open header block.
    ends_block: bool,
    /// Whether a header block has begun and is not complete.
    open: bool,
}

impl HeaderBlocks {
    /// A connection from its start, preface first.
    pub(super) fn new() -> Self {
        Self {
            preface_left: PREFACE,
            header: [0; FRAME_HEADER],
            header_len: 0,
            payload_left: 0,
            ends_block: false,
            open: false,
        }
    }

    /// Follows `bytes`, the next ones the client sent; returns whether a header block is open
    /// after them (from its HEADERS frame's header to the end of its END_HEADERS frame).
    pub(super) fn follow(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let taken = if self.preface_left > 0 {
                let taken = self.preface_left.min(bytes.len());
                self.preface_left -= taken;
                taken
            } else if self.payload_left > 0 {
                let taken = self.payload_left.min(bytes.len());
                self.payload_left -= taken;
                if self.payload_left == 0 {
                    self.frame_ends();
                }
                taken
            } else {
                let taken = (FRAME_HEADER - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + taken]
                    .copy_from_slice(&bytes[..taken]);
                self.header_len += taken;
                if self.header_len == FRAME_HEADER {
                    self.header_len = 0;
                    self.frame_begins();
                }
                taken
            };
            bytes = &bytes[taken..];
        }
        self.open
    }

    /// A whole frame header has arrived.
    fn frame_begins(&mut self) {
        let [l0, l1, l2, kind, flags, ..] = self.header;
        let length = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        self.ends_block = match kind {
            HEADERS | CONTINUATION => {
                self.open = true;
                flags & END_HEADERS != 0
            }
            _ => false,
        };
        self.payload_left = length;
        if length == 0 {
            self.frame_ends();
        }
    }

    /// The current frame's payload has all arrived.
    fn frame_ends(&mut self) {
        if self.ends_block {
            self.open = false;
            self.ends_block = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE_BYTES: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let length = payload.len();
        let mut frame = vec![
            (length >> 16) as u8,
            (length >> 8) as u8,
            length as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        frame.extend_from_slice(payload);
        frame
    }

    /// Whether a block is open after each of `pieces`, fed one after another.
    fn follow_all(pieces: &[&[u8]]) -> Vec<bool> {
        let mut blocks = HeaderBlocks::new();
        pieces.iter().map(|piece| blocks.follow(piece)).collect()
    }

    #[test]
    fn a_whole_block_in_one_read_leaves_nothing_open() {
        let settings = frame(0x4, 0, &[]);
        let headers = frame(HEADERS, END_HEADERS | 0x1, &[0x82, 0x84]);
        let data = frame(0x0, 0x1, &[1, 2, 3]);
        let all = [PREFACE_BYTES, &settings, &headers, &data].concat();
        assert_eq!(follow_all(&[&all]), [false]);
    }

    #[test]
    fn a_block_is_open_from_its_headers_frame_to_the_end_of_its_end_headers_frame() {
        let headers = frame(HEADERS, 0, &[0x82]);
        let middle = frame(CONTINUATION, 0, &[0x84]);
        let last = frame(CONTINUATION, END_HEADERS, &[0x86, 0x41]);
        let (last_but_one, last_byte) = last.split_at(last.len() - 1);
        assert_eq!(
            follow_all(&[
                PREFACE_BYTES,
                &headers[..5],
                &headers[5..],
                &middle,
                last_but_one,
                last_byte,
            ]),
            [false, false, true, true, true, false]
        );
    }

    #[test]
    fn a_headers_frame_whose_payload_trickles_is_an_open_block() {
        let headers = frame(HEADERS, END_HEADERS, &[0x82, 0x84, 0x86]);
        let (head, payload) = headers.split_at(FRAME_HEADER);
        assert_eq!(
            follow_all(&[PREFACE_BYTES, head, &payload[..1], &payload[1..]]),
            [false, true, true, false]
        );
    }

    #[test]
    fn other_frames_open_nothing_whatever_their_size_or_split() {
        let big = vec![7u8; 70_000];
        let data = frame(0x0, 0, &big);
        let ping = frame(0x6, 0, &[0; 8]);
        let stream = [PREFACE_BYTES, &data, &ping].concat();
        let pieces: Vec<&[u8]> = stream.chunks(1000).collect();
        assert!(follow_all(&pieces).iter().all(|open| !open));
        // Byte by byte, a block opens at its frame header and closes at its last byte.
        let headers = frame(HEADERS, END_HEADERS, &[0x82]);
        let bytes = [PREFACE_BYTES, &ping, &headers].concat();
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let open = follow_all(&singles);
        let opened_at = PREFACE_BYTES.len() + ping.len() + FRAME_HEADER - 1;
        let expected: Vec<bool> = (0..bytes.len())
            .map(|at| at >= opened_at && at < bytes.len() - 1)
            .collect();
        assert_eq!(open, expected);
    }
}
