from claw_operator.cli import main

raise SystemExit(main())
