#!/usr/bin/env pwsh
# TransPeft.Engine: the same entry point as build.sh, for PowerShell (Windows, or pwsh anywhere).
#   ./build.ps1 demo | test | build | bench | gpu-package [args...]
param(
    [Parameter(Position = 0)] [string] $Command = 'build',
    [Parameter(Position = 1, ValueFromRemainingArguments = $true)] [string[]] $Rest = @()
)
$ErrorActionPreference = 'Stop'
Set-Location -Path $PSScriptRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'; $env:DOTNET_NOLOGO = '1'; $env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'

function Invoke-Checked([string] $exe, [string[]] $arguments) {
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { throw "$exe $($arguments -join ' ') failed with exit code $LASTEXITCODE" }
}
function Invoke-Tpeft([string[]] $arguments) {
    Invoke-Checked 'dotnet' (@('src/TransPeft.Cli/bin/Release/net10.0/tpeft.dll') + $arguments)
}
# The data and CUDA set-up steps are bash scripts (npm pack, apt-get, dpkg-deb); they need a Unix shell.
function Invoke-Script([string] $script, [string[]] $arguments = @()) {
    if ($IsWindows) { throw "$script needs bash (Debian/Ubuntu tooling); on Windows run it under WSL" }
    Invoke-Checked 'bash' (@($script) + $arguments)
}

switch ($Command) {
    'build' { Invoke-Checked 'dotnet' (@('build', 'TransPeft.Engine.sln', '-c', 'Release', '-nologo', '-v', 'quiet') + $Rest) }
    'test' {
        Invoke-Script 'tools/fetch-test-data.sh'
        Invoke-Script 'tools/install-cuda-deps.sh'
        Invoke-Checked 'dotnet' @('build', 'TransPeft.Engine.sln', '-c', 'Release', '-nologo', '-v', 'quiet')
        Invoke-Checked 'dotnet' (@('test', 'TransPeft.Engine.sln', '-c', 'Release', '--no-build', '-nologo') + $Rest)
    }
    'demo' {
        Invoke-Checked 'dotnet' @('build', 'src/TransPeft.Cli', '-c', 'Release', '-nologo', '-v', 'quiet')
        Invoke-Tpeft (@('experiment') + $Rest)
    }
    'bench' {
        Invoke-Checked 'dotnet' @('build', 'tools/TransPeft.Bench', '-c', 'Release', '-nologo', '-v', 'quiet')
        Invoke-Checked 'dotnet' (@('tools/TransPeft.Bench/bin/Release/net10.0/TransPeft.Bench.dll', 'compare', '--sizes', 'tiny,mini') + $Rest)
    }
    'gpu-package' { Invoke-Script 'tools/gpu-package.sh' $Rest }
    default { Write-Error "usage: ./build.ps1 build|test|demo|bench|gpu-package [args...]"; exit 2 }
}
