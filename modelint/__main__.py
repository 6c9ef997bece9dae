from modelint.cli import main

raise SystemExit(main())
