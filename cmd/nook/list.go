package main

import "errors"

type listCmd struct{}

func (c *listCmd) Run() error { return errors.New("list: not implemented yet") }
