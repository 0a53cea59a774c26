from emotionnas.cli import main

raise SystemExit(main())
