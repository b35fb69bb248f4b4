"""On duty: a customer's ticket wakes the engineer on call when its plan, priority and calendar say so."""
