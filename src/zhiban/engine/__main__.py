"""`python -m zhiban.engine`: a worker process (see runner.main)."""

from zhiban.engine.runner import main

raise SystemExit(main())
