//! A minimal RFC 8941 (Structured Field Values) parser: just enough to parse a Dictionary whose
//! member values the cache reads as integers or booleans, as the targeted cache-control fields
//! of RFC 9213 are. Parameters are parsed (for validity) and dropped.

/// A dictionary member's value, reduced to what the cache reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member {
    /// An sf-integer.
    Integer(i64),
    /// An sf-boolean; a bare key is `?1` (RFC 8941 §3.2).
    Boolean(bool),
    /// Any other value (string, token, decimal, byte sequence, inner list).
    Other,
}

/// The input is not a valid Structured Field Dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ParseError;

type Result<T> = std::result::Result<T, ParseError>;

/// RFC 8941 §4.2 + §4.2.2: parses a whole field value as a Dictionary. Later duplicate
/// keys overwrite earlier ones, keeping the first position (§4.2.2 step 1.4).
pub(super) fn parse_dictionary(field: &str) -> Result<Vec<(String, Member)>> {
    if !field.is_ascii() {
        return Err(ParseError);
    }
    let mut p = Parser {
        input: field.trim_matches(' ').as_bytes(),
        pos: 0,
    };
    let mut members: Vec<(String, Member)> = Vec::new();
    while !p.at_end() {
        let key = p.key()?;
        let value = if p.eat(b'=') {
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Member::Boolean(true)
        };
        match members.iter_mut().find(|(k, _)| *k == key) {
            Some(member) => member.1 = value,
            None => members.push((key, value)),
        }
        p.skip_ows();
        if p.at_end() {
            break;
        }
        if !p.eat(b',') {
            return Err(ParseError);
        }
        p.skip_ows();
        if p.at_end() {
            // A trailing comma is an error (§4.2.2 step 1.7).
            return Err(ParseError);
        }
    }
    Ok(members)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        let matched = self.peek() == Some(c);
        if matched {
            self.pos += 1;
        }
        matched
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// §4.2.3.3: `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
    fn key(&mut self) -> Result<String> {
        let start = self.pos;
        match self.next() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => {}
            _ => return Err(ParseError),
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c))
        {
            self.pos += 1;
        }
        Ok(String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    /// §4.2.1.1 / §4.2.3.2 item or inner list, with its parameters.
    fn item_or_inner_list(&mut self) -> Result<Member> {
        if self.peek() == Some(b'(') {
            self.inner_list()?;
            return Ok(Member::Other);
        }
        let value = self.bare_item()?;
        self.parameters()?;
        Ok(value)
    }

    /// §4.2.1.2: `"(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters`.
    fn inner_list(&mut self) -> Result<()> {
        self.pos += 1; // the "("
        loop {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            match self.peek() {
                Some(b' ' | b')') => {}
                _ => return Err(ParseError),
            }
        }
    }

    /// §4.2.3.2: `*( ";" *SP key [ "=" bare-item ] )`.
    fn parameters(&mut self) -> Result<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Ok(())
    }

    /// §4.2.3.1: dispatch on the first character.
    fn bare_item(&mut self) -> Result<Member> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string().map(|()| Member::Other),
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                self.token();
                Ok(Member::Other)
            }
            Some(b':') => self.byte_sequence().map(|()| Member::Other),
            Some(b'?') => self.boolean(),
            _ => Err(ParseError),
        }
    }

    /// §4.2.4: integer (at most 15 digits) or decimal (at most 12.3 digits).
    fn number(&mut self) -> Result<Member> {
        let negative = self.eat(b'-');
        let start = self.pos;
        let mut decimal = false;
        if !matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            return Err(ParseError);
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.pos += 1;
            } else if c == b'.' && !decimal {
                if self.pos - start > 12 {
                    return Err(ParseError);
                }
                decimal = true;
                self.pos += 1;
            } else {
                break;
            }
            let len = self.pos - start;
            if (!decimal && len > 15) || (decimal && len > 16) {
                return Err(ParseError);
            }
        }
        let digits = &self.input[start..self.pos];
        if decimal {
            let fraction = digits.iter().rev().take_while(|c| **c != b'.').count();
            if fraction == 0 || fraction > 3 {
                return Err(ParseError);
            }
            return Ok(Member::Other);
        }
        // At most 15 ASCII digits: always fits in an i64.
        let magnitude = digits
            .iter()
            .fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0'));
        Ok(Member::Integer(if negative {
            -magnitude
        } else {
            magnitude
        }))
    }

    /// §4.2.5: printable ASCII, with `\"` and `\\` as the only escapes.
    fn string(&mut self) -> Result<()> {
        self.pos += 1; // the opening DQUOTE
        loop {
            match self.next() {
                None => return Err(ParseError),
                Some(b'\\') => match self.next() {
                    Some(b'"' | b'\\') => {}
                    _ => return Err(ParseError),
                },
                Some(b'"') => return Ok(()),
                Some(c) if (0x20..0x7f).contains(&c) => {}
                Some(_) => return Err(ParseError),
            }
        }
    }

    /// §4.2.6: `( ALPHA / "*" ) *( tchar / ":" / "/" )`; the first character was checked.
    fn token(&mut self) {
        self.pos += 1;
        while matches!(self.peek(), Some(c) if is_tchar(c) || c == b':' || c == b'/') {
            self.pos += 1;
        }
    }

    /// §4.2.7: `":" *(base64) ":"`.
    fn byte_sequence(&mut self) -> Result<()> {
        self.pos += 1;
        loop {
            match self.next() {
                Some(b':') => return Ok(()),
                Some(c) if c.is_ascii_alphanumeric() || b"+/=".contains(&c) => {}
                _ => return Err(ParseError),
            }
        }
    }

    /// §4.2.8: `"?" ( "0" / "1" )`.
    fn boolean(&mut self) -> Result<Member> {
        self.pos += 1;
        match self.next() {
            Some(b'1') => Ok(Member::Boolean(true)),
            Some(b'0') => Ok(Member::Boolean(false)),
            _ => Err(ParseError),
        }
    }
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8941 §4.2.2 dictionary parsing, valid and invalid inputs.
    #[test]
    fn rfc8941_dictionary_parser() {
        let valid = [
            "a",
            "a=1",
            "a=1, b=2",
            "a=1,b=2",
            "a=1 ,\tb=2",
            "a=-1",
            "a=1.5",
            "a=123456789012.123",
            "a=\"str \\\" \\\\ ing\"",
            "a=tok/en:x",
            "*a=*b",
            "a=:aGVsbG8=:",
            "a=?0, b=?1",
            "a=(1 2 \"x\");p, b=()",
            "a;p=1;q",
            "a=1;p=\"x\";q=?1",
            "a_b-c.d*e9=1",
            "  a=1  ",
        ];
        for input in valid {
            assert!(parse_dictionary(input).is_ok(), "{input:?} should parse");
        }
        let invalid = [
            "A=1",
            "1a=1",
            "a=1,",
            "a=1,,b=2",
            ",a=1",
            "a=1 b=2",
            "a = 1",
            "a=",
            "a=-",
            "a=1.",
            "a=1.1234",
            "a=1234567890123.1",
            "a=1234567890123456",
            "a=\"unterminated",
            "a=\"bad \\n escape\"",
            "a=?2",
            "a=:not base64!:",
            "a=(1 2",
            "a=(1,2)",
            "a;P=1",
            "a=#",
            "a=é",
        ];
        for input in invalid {
            assert!(parse_dictionary(input).is_err(), "{input:?} should fail");
        }
        assert_eq!(
            parse_dictionary("a=5, b, c=?0, d=x").expect("valid"),
            vec![
                ("a".to_owned(), Member::Integer(5)),
                ("b".to_owned(), Member::Boolean(true)),
                ("c".to_owned(), Member::Boolean(false)),
                ("d".to_owned(), Member::Other),
            ]
        );
        assert_eq!(parse_dictionary("").expect("empty is valid"), vec![]);
    }
}
