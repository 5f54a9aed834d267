import { mount } from 'svelte';
import '../theme.css';
import Page from './Board.svelte';

mount(Page, { target: document.getElementById('app')! });
