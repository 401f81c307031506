//! An error as one line with its causes (`what: why: deeper why`), for dead-letter reasons
//! and refusals: a storage error then names the object and what the server said.

/// `e` and every source below it, joined by `: `.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
