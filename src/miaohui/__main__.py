from miaohui.cli import main

main()
