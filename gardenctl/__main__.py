from gardenctl.cli.main import main

raise SystemExit(main())
