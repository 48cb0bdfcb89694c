from pyapprox.cli import main

raise SystemExit(main())
