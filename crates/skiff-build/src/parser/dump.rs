//! BuildKit's s-expression dump of the parse tree, the format of its golden `result` files:
//! `(copy ["--from=x"] "a" "b")`, `(onbuild (run "echo" "test"))`.

use super::{Dockerfile, Instruction};
use crate::go_quote;

impl Dockerfile {
    /// One `(instruction ...)` per line, without a trailing newline.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for instruction in &self.instructions {
            out.push('(');
            out.push_str(&instruction.dump());
            out.push_str(")\n");
        }
        out.trim().to_string()
    }
}

impl Instruction {
    /// The command lower-cased, the flags as a quoted list, then each argument quoted.
    pub fn dump(&self) -> String {
        let mut out = self.command.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            out.push_str(" [");
            out.push_str(&flags.join(" "));
            out.push(']');
        }
        for arg in &self.args {
            out.push(' ');
            out.push_str(&go_quote(arg));
        }
        if let Some(sub) = &self.onbuild {
            out.push_str(" (");
            out.push_str(&sub.dump());
            out.push(')');
        }
        out.trim().to_string()
    }
}
