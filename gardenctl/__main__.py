from gardenctl.cli.entry import main

raise SystemExit(main())
