// Command trendstream turns live retail sales events into refreshed demand
// forecasts. Run "trendstream help" for its subcommands.
package main
