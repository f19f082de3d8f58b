//! Resolves `.equ` constants, which may use each other in any order, to numbers. Depth-first
//! with an explicit stack (no recursion, so a long chain `A1 = A2 + 1`, `A2 = A3 + 1`, ... cannot
//! overflow the stack), reporting a cycle once, with its path.

use crate::error::{Diagnostic, Origin};
use crate::expr::{eval, EvalError, Expr};
use std::collections::HashMap;

/// One `.equ NAME, EXPR` as written.
pub struct Definition {
    pub name: String,
    pub expr: Expr,
    pub origin: Origin,
}

#[derive(Clone, Copy)]
enum State {
    /// On the stack: seeing it again closes a cycle.
    Visiting,
    /// Evaluated; `None` if its definition was wrong (already reported).
    Done(Option<i128>),
}

/// The value of every constant, or `None` for those whose definition is in error.
#[derive(Default)]
pub struct Constants {
    values: HashMap<String, Option<i128>>,
}

impl Constants {
    /// The value of `name`, if it is defined and its definition is not in error.
    pub fn value(&self, name: &str) -> Option<i128> {
        self.values.get(name).copied().flatten()
    }

    /// The value of `name` for an expression at `origin`/`col`.
    pub fn get(&self, name: &str, origin: &Origin, col: usize) -> Result<i128, EvalError> {
        match self.values.get(name) {
            Some(Some(v)) => Ok(*v),
            Some(None) => Err(EvalError::Reported),
            None => Err(EvalError::Diag(Diagnostic::new(
                origin,
                col,
                format!("unknown constant `{name}`: define it with .equ {name}, VALUE"),
            ))),
        }
    }
}

/// Evaluates every definition (names are unique: duplicates are refused before this).
pub fn resolve(defs: &[Definition], errors: &mut Vec<Diagnostic>) -> Constants {
    let index: HashMap<&str, usize> = defs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let mut state: HashMap<usize, State> = HashMap::new();
    for root in 0..defs.len() {
        let mut stack = vec![root];
        while let Some(&top) = stack.last() {
            if matches!(state.get(&top), Some(State::Done(_))) {
                stack.pop();
                continue;
            }
            state.insert(top, State::Visiting);
            let Some(def) = defs.get(top) else {
                stack.pop();
                continue;
            };
            let mut lookup = |name: &str, col: usize| -> Result<i128, EvalError> {
                let Some(&i) = index.get(name) else {
                    return Err(EvalError::Diag(Diagnostic::new(
                        &def.origin,
                        col,
                        format!("unknown constant `{name}`: define it with .equ {name}, VALUE"),
                    )));
                };
                match state.get(&i) {
                    Some(State::Done(Some(v))) => Ok(*v),
                    Some(State::Done(None)) => Err(EvalError::Reported),
                    _ => Err(EvalError::Needs(name.to_string(), col)),
                }
            };
            let result = eval(&def.expr, &def.origin, &mut lookup);
            match result {
                Ok(v) => {
                    // `offsetof` was refused by the parser; a field here cannot happen.
                    state.insert(top, State::Done(Some(v.constant)));
                    stack.pop();
                }
                Err(EvalError::Needs(name, col)) => {
                    let Some(&dep) = index.get(name.as_str()) else {
                        state.insert(top, State::Done(None));
                        stack.pop();
                        continue;
                    };
                    if let Some(at) = stack.iter().position(|&s| s == dep) {
                        let mut path: Vec<&str> = stack[at..]
                            .iter()
                            .filter_map(|&s| defs.get(s).map(|d| d.name.as_str()))
                            .collect();
                        path.push(&name);
                        errors.push(Diagnostic::new(
                            &def.origin,
                            col,
                            format!(
                                "constant `{name}` is defined in terms of itself ({})",
                                path.join(" -> ")
                            ),
                        ));
                        for &s in &stack[at..] {
                            state.insert(s, State::Done(None));
                        }
                        stack.truncate(at);
                    } else {
                        stack.push(dep);
                    }
                }
                Err(e) => {
                    if let EvalError::Diag(d) = e {
                        errors.push(d);
                    }
                    state.insert(top, State::Done(None));
                    stack.pop();
                }
            }
        }
    }
    let values = defs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let v = match state.get(&i) {
                Some(State::Done(v)) => *v,
                _ => None,
            };
            (d.name.clone(), v)
        })
        .collect();
    Constants { values }
}
