return TransPeft.ServeBench.ServeBenchCommand.Execute(args);
