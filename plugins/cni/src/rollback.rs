//! Side effects that undo themselves: an ADD pushes the undo of each step it
//! took; success commits them away, any early return runs them newest first.

/// One undo step: what it undoes, and how.
type Step = (String, Box<dyn FnOnce() -> Result<(), String>>);

/// A stack of undo steps run on drop unless [`Rollback::commit`] was called.
#[derive(Default)]
pub struct Rollback {
    steps: Vec<Step>,
}

impl Rollback {
    pub fn new() -> Rollback {
        Rollback::default()
    }

    /// Remember how to undo a step; `what` names it in the log if the undo fails.
    pub fn push(
        &mut self,
        what: impl Into<String>,
        undo: impl FnOnce() -> Result<(), String> + 'static,
    ) {
        self.steps.push((what.into(), Box::new(undo)));
    }

    /// The ADD succeeded: keep everything.
    pub fn commit(mut self) {
        self.steps.clear();
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        while let Some((what, undo)) = self.steps.pop() {
            if let Err(e) = undo() {
                log::warn!("rollback: undo {what}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn undoes_newest_first_unless_committed() {
        let log = Rc::new(RefCell::new(Vec::new()));
        {
            let mut rb = Rollback::new();
            for i in 0..3 {
                let l = log.clone();
                rb.push(format!("step {i}"), move || {
                    l.borrow_mut().push(i);
                    if i == 1 {
                        Err("fails, and the others still run".into())
                    } else {
                        Ok(())
                    }
                });
            }
        }
        assert_eq!(*log.borrow(), vec![2, 1, 0]);
        let l = log.clone();
        let mut rb = Rollback::new();
        rb.push("x", move || {
            l.borrow_mut().push(9);
            Ok(())
        });
        rb.commit();
        assert_eq!(log.borrow().len(), 3);
    }
}
