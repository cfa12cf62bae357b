//! The one quoting rule of every message a user reads (API errors, record
//! and batch errors, the command line): a value appears as the user sent
//! it, between double quotes, with no escapes of any kind (a JSON body
//! escapes what JSON must when the message is written into it), and cut to
//! at most [`QUOTE_MAX`] bytes with a visible marker, `…(+N bytes)`, so
//! that a 10 MB value does not make a 10 MB error. Names (parameters,
//! fields) follow the same rule between backticks. Servers and tools that
//! word their own messages use the same types.
//!
//! ```
//! use backdex::quote::{Named, Quoted};
//! assert_eq!(format!("{} = {}", Named("name"), Quoted("e\u{301}")), "`name` = \"e\u{301}\"");
//! let long = "x".repeat(300);
//! assert_eq!(Quoted(&long).to_string(), format!("\"{}\"…(+44 bytes)", "x".repeat(256)));
//! ```

use std::fmt;

/// The most bytes of a value or name a message shows.
pub const QUOTE_MAX: usize = 256;

/// The part of `text` a message shows, and how many bytes are left out.
fn cut(text: &str) -> (&str, usize) {
    if text.len() <= QUOTE_MAX {
        return (text, 0);
    }
    let mut end = QUOTE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let shown = text.get(..end).unwrap_or_default();
    (shown, text.len() - shown.len())
}

fn write_cut(f: &mut fmt::Formatter<'_>, open: char, text: &str, close: char) -> fmt::Result {
    let (shown, rest) = cut(text);
    write!(f, "{open}{shown}{close}")?;
    if rest > 0 {
        write!(f, "…(+{rest} bytes)")?;
    }
    Ok(())
}

/// A value in a message: `"value"`, cut to [`QUOTE_MAX`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_cut(f, '"', self.0, '"')
    }
}

/// A parameter or field name in a message: `` `name` ``, cut to
/// [`QUOTE_MAX`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a>(pub &'a str);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_cut(f, '`', self.0, '`')
    }
}

/// Text shown without quotes (JSON of a mistyped value, say), cut to
/// [`QUOTE_MAX`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, rest) = cut(self.0);
        f.write_str(shown)?;
        if rest > 0 {
            write!(f, "…(+{rest} bytes)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_appear_as_sent() {
        assert_eq!(Quoted("e\u{301}").to_string(), "\"e\u{301}\"");
        assert_eq!(Quoted("\u{feff}x").to_string(), "\"\u{feff}x\"");
        assert_eq!(Quoted("a\0b").to_string(), "\"a\0b\"");
        assert_eq!(Quoted("say \"hi\"\\").to_string(), "\"say \"hi\"\\\"");
        assert_eq!(Named("name").to_string(), "`name`");
        assert_eq!(Shown("1.5").to_string(), "1.5");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = "x".repeat(1_048_576);
        assert_eq!(
            Quoted(&long).to_string(),
            format!("\"{}\"…(+1048320 bytes)", "x".repeat(256))
        );
        // 255 ASCII bytes, then a two-byte character across the limit.
        let text = format!("{}é{}", "a".repeat(255), "b".repeat(10));
        assert_eq!(
            Named(&text).to_string(),
            format!("`{}`…(+12 bytes)", "a".repeat(255))
        );
        assert_eq!(Shown(&"y".repeat(256)).to_string(), "y".repeat(256));
    }
}
